"""Planning a run: which (framework, model) pairs and shards to run, and in what order."""
