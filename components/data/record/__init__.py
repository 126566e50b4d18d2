"""The parts of one record every room uses: boxes, the image it names (opened under its root), why a
record is rejected, and the vocabulary its text is written in."""
