"""Files that ``smithers init`` writes."""
