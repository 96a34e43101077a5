"""Ray Tune: the searcher, scheduler, callbacks, trainable and trackers. The only package that imports Ray."""
