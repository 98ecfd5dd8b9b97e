"""Dependencies: what the worker needs installed, resolved for it, locked, and fetched.

    module        input                                   output                      side effects
    requirements  functions, requirements.txt, pyproject   RequirementSet              none
    target        --python-version, --glibc               Target: tags and markers    none
    uv            requirement lines, Target               pins, or uv's derivation    runs uv
    resolve       RequirementSet, Target                  Resolution (sites of pins)  resolution cache
    choose        Resolution, computes, exclusions        SitePlan per site           none
    prune         a graph, exclusions                     what is left out            none
    lock          SitePlans                               pylock.toml (PEP 751)       writes the lock
    fetch         the wheels the plans ship               {sha256: cached wheel}      downloads; wheel cache
    plan          all of the above, for `flashc build`    Dependencies                the above

Importing this package imports nothing else, so its light modules (`target`) cost no more than themselves.
"""
