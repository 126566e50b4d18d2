"""Per-record transforms, pure (no Ray): neighbours, masking, one record to the model's encoded row,
and captioning requests to records."""
