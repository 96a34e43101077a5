"""What a study is: a study file to typed, checked objects (no Ray, no torch at import; the pre-flight imports torch)."""
