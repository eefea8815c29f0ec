"""Scoring ensembles and fits, and the tables and figures that report them."""
