"""A study's stored state: attribute keys, the folder's files, storage, the ledger, the budget account, the driver
lease and the trials table."""
