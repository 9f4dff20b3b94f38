"""Microsoft 365 through Microsoft Graph: ``client`` (HTTP, throttling), ``auth`` (msal),
``records`` (JSON to records), ``delta``, ``mail``, ``calendar``, ``contacts``,
``writeback``, the connector that composes them, and the kinds' settings (``kind``)."""
