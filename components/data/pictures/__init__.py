"""What a person looks at: a font that can draw the captions, contact sheets of images and OCR."""
