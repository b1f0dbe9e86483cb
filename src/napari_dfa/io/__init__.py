"""Reading and writing images, label images and pyramids."""
