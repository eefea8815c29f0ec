"""The common frame: independent of the input frame, and invertible."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryosampler.physics.frame import (map_to_input_frame, map_to_model_frame, own_frame_template, placement,
                               principal_axes_template)
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from cryosampler.io.atomic_files import read_structure


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



def _render(coords, numbers, grid):
    return render_density(torch.tensor(coords)[None], torch.tensor(numbers), grid)[0].numpy()


def test_a_model_frame_map_lands_on_the_structure_in_the_input_frame(shared_pdb):
    """The map of the placed structure, brought back to the input frame, matches the structure rendered
    directly there (a rotated placement: resampled; an unrotated one: values unchanged, origin moved)."""
    grid = MapGrid()
    cam = read_structure(shared_pdb("1cll.pdb"))
    user = cam.with_coords(cam.coords @ Rotation.from_euler("zyx", [35, -70, 120], degrees=True).as_matrix().T + 25.0)
    for template in (principal_axes_template(cam), own_frame_template(user)):
        place = placement(user, template)
        model_map = _render(place.apply(user.coords), user.atomic_numbers, grid)
        volume, origin = map_to_input_frame(model_map, grid.size, grid.apix, place)
        box_centre = np.asarray(origin) + (grid.size // 2) * grid.apix
        np.testing.assert_allclose(box_centre, user.coords.mean(0), atol=1e-6)
        direct = _render(user.coords - box_centre, user.atomic_numbers, grid)
        assert map_correlation(volume[None], direct[None])[0, 0] > 0.99
    np.testing.assert_array_equal(volume, model_map.astype(np.float32))  # unrotated: only the origin moves


def test_a_user_frame_map_turned_into_the_model_frame_matches_the_placed_structure(shared_pdb):
    """map_to_model_frame (what fit uses) inverts map_to_input_frame for a rotated placement."""
    grid = MapGrid()
    cam = read_structure(shared_pdb("1cll.pdb"))
    user = cam.with_coords(cam.coords @ Rotation.from_euler("zyx", [35, -70, 120], degrees=True).as_matrix().T + 25.0)
    place = placement(user, principal_axes_template(cam))
    assert not np.allclose(place.rotation, np.eye(3), atol=0.1)
    user_box = _render(user.coords - user.coords.mean(0), user.atomic_numbers, grid)  # as ingest_map gives it
    in_model = map_to_model_frame(user_box, place)
    direct = _render(place.apply(user.coords), user.atomic_numbers, grid)
    assert map_correlation(in_model[None], direct[None])[0, 0] > 0.99
