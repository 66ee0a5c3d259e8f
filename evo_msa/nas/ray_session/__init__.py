"""The search's Ray, behind one small adapter: join a cluster or start one of our own, never
without token authentication.

    with ray_session(opts):       this search's Ray (the enclosing SharedRay's, or its own)
    with SharedRay():             several searches in the block share one Ray (studies)
    trial_slots(opts)             trials the cluster runs at once

One job per module:
    session.py       connect (join or start), the session's life, shutdown
    token_file.py    the token file a local Ray reads, readable by its owner only
    environment.py   environment variables for a block only (put back afterwards)
    stderr.py        what Ray's core writes to file descriptor 2, held back
    processes.py     the Ray processes this one started (Linux /proc)
    private.py       every private Ray API the project touches, and nothing else; each one has
                     a test that fails when the installed Ray changes under it
"""
from evo_msa.nas.ray_session.environment import environment
from evo_msa.nas.ray_session.session import SharedRay, connect_ray, ray_session, trial_slots
from evo_msa.nas.ray_session.token_file import private_token_file

__all__ = ["SharedRay", "connect_ray", "environment", "private_token_file", "ray_session",
           "trial_slots"]
