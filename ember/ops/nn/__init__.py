"""Neural-network ops (one file per family); ``ember.nn.functional`` is their public face."""
