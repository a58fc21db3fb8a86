"""Scenes: the Scene interface, Gaussian parameters, INRIA .ply I/O, fitting."""
