"""Data in and out: the Structure type, atomic files (PDB/mmCIF), maps (MRC) and atomic file writes."""
