"""Video scoring parts that never decode: frame samplers, aggregators, fake segments."""
