"""Deploying to a board: one verifiable package, atomic install, rollback.

* :mod:`edgeseg.deploy.package` (workstation) builds ``pkg.tar``: the bundle,
  the resolved device config, a wheel of the runtime, pinned runtime
  requirements, the installer, a launcher script and a systemd unit, plus
  ``package.json`` with the sha256 of every member.
* :mod:`edgeseg.deploy.verify` and :mod:`edgeseg.deploy.install` (board)
  check every member before writing anything, stage the version, then switch
  the ``active`` symlink by rename. They use only the standard library (this
  ``__init__`` imports nothing) and ship inside each package under
  ``installer/``, so a fresh board with nothing but ``python3`` (and ``pip``)
  can run them.
* :mod:`edgeseg.deploy.rollback` swaps ``active`` back to ``previous``.

Layout on the board (``ROOT/opt/edgeseg`` by default)::

    versions/<id>/        one installed package (immutable once renamed here)
    active   -> versions/<id>    what the service runs
    previous -> versions/<id>    what ``edgeseg rollback`` returns to
"""
