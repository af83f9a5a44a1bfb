"""Competition files in, submissions out: the canonical frame, its validation, submission files, and the synthetic demo competition."""
