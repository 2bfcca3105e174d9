"""Behaviour sources of the datasets: trained policies (online SAC) and their committed ladders."""
