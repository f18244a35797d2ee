"""What crosses the disk or the network: run files, presets, surface files, model and data
readers, and the checks on files from strangers."""
