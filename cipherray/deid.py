"""`cipherray.deid`: de-identification (keyed pseudonyms, generalisation hierarchies,
Mondrian k-anonymity with l-diversity and t-closeness, re-identification risk and
utility), the public name of :mod:`cipherray.protocols.deid`."""

from cipherray.protocols.deid import *  # noqa: F403
from cipherray.protocols.deid import __all__  # noqa: F401
