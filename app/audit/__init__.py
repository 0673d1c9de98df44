"""`outbid verify`: prove from the topics themselves that nothing was lost or applied twice."""
