"""Dataset recipes, one module per dataset: ``suburmp`` (Sub-URMP from a URMP tree) and ``inis``
(INIS from ImageNet photos and a built Sub-URMP); ``membership`` (which URMP tracks are the
published Sub-URMP) and ``build`` (output folder, resume, failures) are what they share.

Each recipe has two verbs: ``plan_<name>`` (read and check the inputs, decide every unit of work,
write nothing) and ``build_<name>`` (plan, then write the dataset). Both are re-exported here with
the types their arguments take.
"""

from cmav_data.recipes.build import BuildError, RunFlags
from cmav_data.recipes.inis import InisOptions, build_inis, plan_inis
from cmav_data.recipes.membership import MembershipRequest
from cmav_data.recipes.suburmp import SubUrmpOptions, build_suburmp, plan_suburmp

__all__ = [
    "BuildError", "InisOptions", "MembershipRequest", "RunFlags", "SubUrmpOptions", "build_inis", "build_suburmp",
    "plan_inis", "plan_suburmp",
]
