"""The multi-turn edit loop, mask fusion, relevance field and sessions."""
