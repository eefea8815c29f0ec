"""The common frame: independent of the input frame, and invertible."""

import numpy as np
from scipy.spatial.transform import Rotation

from cryosampler.frame import own_frame_template, placement, principal_axes_template
from cryosampler.structure import read_structure


def test_template_and_placement_do_not_depend_on_the_input_frame(shared_pdb):
    cam = read_structure(shared_pdb("1exr.pdb"))
    rotation = Rotation.from_euler("zyx", [20, 130, -45], degrees=True).as_matrix()
    moved = cam.with_coords(cam.coords @ rotation.T - 40.0)
    t1, t2 = principal_axes_template(cam), principal_axes_template(moved)
    np.testing.assert_allclose(t1.ca_coords, t2.ca_coords, atol=1e-6)
    other = read_structure(shared_pdb("4cln.pdb"))
    moved_other = other.with_coords(other.coords @ rotation.T + 7.0)
    placed = placement(other, t1).apply(other.coords)
    np.testing.assert_allclose(placement(moved_other, t1).apply(moved_other.coords), placed, atol=1e-5)
    np.testing.assert_allclose(placed.mean(axis=0), 0.0, atol=1e-6)


def test_inverse_transform_restores_coordinates(shared_pdb):
    cam = read_structure(shared_pdb("4cln.pdb"))
    place = placement(cam, principal_axes_template(cam))
    np.testing.assert_allclose(place.inverse().apply(place.apply(cam.coords)), cam.coords, atol=1e-9)


def test_own_frame_template_places_by_translation_alone(shared_pdb):
    structure = read_structure(shared_pdb("1cll.pdb"))
    structure = structure.with_coords(structure.coords @ Rotation.from_euler("xyz", [0.3, -1.1, 0.7]).as_matrix().T + 40.0)
    transform = placement(structure, own_frame_template(structure))
    np.testing.assert_allclose(transform.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(transform.apply(structure.coords).mean(0), 0.0, atol=1e-9)

