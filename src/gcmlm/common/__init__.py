"""Logic every stage shares: errors, atomic outputs, patient tables, manifests, progress."""
