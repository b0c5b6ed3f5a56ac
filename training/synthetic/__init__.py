"""Generated training images: what the source collection lacks, drawn from a seeded
``random.Random`` so the data set is reproducible. ``graphics`` draws flat non-logo graphics
(charts, text pages, diagrams, screenshots), ``emblems`` logos in the design families the icon
sets lack (wordmarks, lettermarks, emblems), ``maps`` coloured maps from vector sources.
``training.prepare`` calls them; they need Pillow and matplotlib, never Keras or TensorFlow.
"""
