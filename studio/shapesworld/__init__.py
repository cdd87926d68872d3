"""ShapesWorld: a seeded procedural world of coloured shapes that move, with captions, questions and how-to
steps (`world`, `text`), and an analytic detector that reads frames back (`detector`).

The project trains its tiny default model on this world and measures every workflow's output with the
detector. Only numpy, torch and the standard library are needed. Import the modules
(`world`, `text`, `detector`, `metrics`, `splits`, `data`, `evaluate`, `train_default`) by name.
"""
