"""`runpod_flash`, as Flash SDK code imports it: this module is flashc_runtime under that name.

flashc installs it so that code written against the Flash SDK runs unmodified with flashc
(`from runpod_flash import remote, LiveServerless`). Do not install the Flash SDK in the same environment.
"""

import sys

import flashc_runtime

sys.modules[__name__] = flashc_runtime
