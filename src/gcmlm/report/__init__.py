"""The report branch: pages that put the outputs of the other branches together (run-report)."""
