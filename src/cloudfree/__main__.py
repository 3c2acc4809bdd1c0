"""``python -m cloudfree``: the command line (:func:`cloudfree.cli.main`).

Needed besides the ``cloudfree`` script because Lightning re-launches the running command for
the other DDP ranks, and ``python -m cloudfree ...`` must then work the same way.
"""

from cloudfree.cli import main

if __name__ == "__main__":
    main(prog_name="cloudfree")
