"""The samplers a study names and the views of the study msup shows them."""
