"""The pseudonymisation key, read from the environment at run time and never shown in config or logs."""

import dagster as dg

from healthcare_assets.settings import PSEUDONYMISATION_KEY_VARIABLE, pseudonymisation_key


class PrivacyResource(dg.ConfigurableResource):
    """Names the environment variable that holds the HMAC key; only the name appears in the UI."""

    environment: str = "local"
    key_variable: str = PSEUDONYMISATION_KEY_VARIABLE

    def key(self) -> bytes:
        return pseudonymisation_key(self.environment, self.key_variable)
