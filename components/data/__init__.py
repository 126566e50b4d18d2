"""The CapOnImage2M data contract: release format, boxes, neighbours, masking, tokenizer, synthetic crawl.

Everything here is plain Python / numpy / Pillow; nothing imports Ray, MLflow or torch except the
Ray Data pipeline module, which imports Ray lazily.
"""
