"""Analytics workloads: de-identification (`cipherray run deid`), joint pseudonyms across
parties and authorised re-identification (`pseudonyms`)."""
