"""The CapOnImage2M release format and what is derived from it: the Parquet index, the versions a
dataset grows through, and its summary in the paper's Table 1 terms."""
