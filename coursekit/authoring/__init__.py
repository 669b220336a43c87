"""The release: the notebook's generated cells, its predictions, the data, `make release`.
May import kernel/ and the package's root modules."""
