"""A user's reference structure placed in a trained model's frame, and checked against what the model can take
(its template, its box and its token slots), before sampling or reading out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cryosampler.io.structure import Structure
from cryosampler.model.denoiser import CryoSampler, ModelConfig
from cryosampler.model.featurize import ProteinFeatures, featurize
from cryosampler.model.latent_model import LatentModel, LatentModelConfig
from cryosampler.physics.frame import (MAX_TEMPLATE_RMSD, RigidTransform, check_template_match, placement,
                                       principal_placement)
from cryosampler.physics.render import check_in_box

__all__ = ["PlacedReference", "prepare_reference", "check_takes"]


@dataclass(frozen=True)
class PlacedReference:
    """A user's reference structure placed in the model's frame and checked against the model."""

    protein: ProteinFeatures  # features at the placed coordinates
    place: RigidTransform  # input frame → model frame
    template_rmsd: float  # Å, CA RMSD to the model's template after superposition (frame.template_rmsd); NaN


def prepare_reference(model: CryoSampler | LatentModel, structure: Structure, max_template_rmsd: float = MAX_TEMPLATE_RMSD,
                      source: str | None = None, override: str | None = None) -> PlacedReference:
    """Place a user's reference in the model's frame and check the model can take it.

    source: name for error messages (the file; default the structure's name). override: how the caller goes past
    a poor template fit, if it can, for the message (:func:`~cryosampler.physics.frame.check_template_match`).

    Raises ValueError naming the problem: more chains than the model was trained on, too few residue numbers
    shared with the model's template, a CA
    fit to the template worse than ``max_template_rmsd`` Å (pass ``math.inf`` to accept any), atoms outside the
    map box, or more tokens than the model has slots for.
    """
    source = structure.name if source is None else source
    n_chains = len(set(structure.chain_ids))
    if model.config.chains and n_chains > model.config.chains:
        raise ValueError(f"{source}: {n_chains} chains, but this model was trained on references of "
                         f"{model.config.chains}; name the chain(s) it was trained on with --chain, or train a model "
                         "on this reference")
    if model.template is None:  # several proteins, each on its own principal axes: nothing to fit against
        fit, place = math.nan, principal_placement(structure)
    else:
        fit = check_template_match(structure, model.template, max_template_rmsd, source, override)
        place = placement(structure, model.template)
    protein = featurize(structure, place.apply(structure.coords), tokens=model.config.tokens)
    check_takes(model.config, protein, source)
    return PlacedReference(protein, place, fit)


def check_takes(config: ModelConfig | LatentModelConfig, protein: ProteinFeatures, source: str) -> None:
    """ValueError naming ``source`` unless a model of ``config`` can take ``protein`` (placed in its frame): every
    atom in the map box, and no more tokens than the model has slots for."""
    grid = config.grid
    check_in_box(protein.ref_coords[None], grid, names=[source],
                 advice=f"the protein does not fit this model's {grid.box_length:.0f} Å box")
    n_tokens = protein.token_position.shape[0]
    if config.max_tokens is not None and n_tokens > config.max_tokens:
        raise ValueError(f"{source}: {n_tokens} {config.tokens} tokens, but this model takes at most "
                         f"{config.max_tokens}")
