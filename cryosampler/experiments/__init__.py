"""The experiments that reproduce and benchmark the method (notebooks 01–07): simulated data, baselines, real
motions, users' map folders, run profiles and downloaded data. The command line imports nothing from here."""
