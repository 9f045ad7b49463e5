"""Photo collections: one or more reference photos personalise SAM, which then finds the objects in
every other photo (PerSAM / PerSAM-F's image recipe), photo by photo with no state between them."""
