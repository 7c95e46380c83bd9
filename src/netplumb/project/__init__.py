"""Projects: a topology file brought up (``netplumb up``) and taken down (``netplumb down``).

``plan.py`` is pure (the resolved topology and what is observed -> actions); ``apply.py``
observes, applies with rollback and keeps the project's record; ``guests.py`` starts and
removes a replica on its runtime (a netplumb host or a Docker container).
"""
