"""The synthetic crawl: product images in the CapOnImage2M release format, each caption composed of
parts owned by one input (``grammar``), laid out and drawn (``layout``, ``shapes``), turned into
records and their truth sidecar (``generate``, ``truth``), written whole (``build``), and checked as
a benchmark (``checks``, ``columns``; the oracle is ``components.evaluation.oracle``). See
docs/synthetic.md.
"""
