"""Building the ONNX embedding models and running them (tokenize, batch, infer, pool)."""
