"""Objects across frames: per-object state, seeding from masks and references, the segmenter that
steps frame by frame, the prompting session (clicks on any frame, both directions), prompts files."""
