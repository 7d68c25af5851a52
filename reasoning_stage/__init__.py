"""Stage two: the token-based GNN that reasons over tokenized graphs (see the reason issue)."""
