"""Reading and writing: frame readers (video files, frame folders, gifs), label PNGs with the DAVIS
palette, per-frame PNG writers, and safe file writing."""
