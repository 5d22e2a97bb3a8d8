"""The live web board: what is at risk now, who was paged, who owns it (README, "Board")."""
