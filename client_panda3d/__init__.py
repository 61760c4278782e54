"""The Panda3D AR client and the virtual agent scene."""
