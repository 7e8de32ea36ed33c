"""Code every synthtune process shares.

Importing the package unsets a blank PROMETHEUS_MULTIPROC_DIR (and its old lower-case name).
prometheus_client turns multi-process mode on when the variable is present at all, and then
writes its counter_<pid>.db files into os.path.join("", ...): the current directory, the
repository under `make up` and the tests. Every process imports this package before
prometheus_client (their settings come first; control_plane.gunicorn_conf imports it itself), so
a blank value means what an absent one does: values in memory.
"""

import os as _os

for _name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
    if _name in _os.environ and not _os.environ[_name].strip():
        del _os.environ[_name]
