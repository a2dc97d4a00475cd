"""Planning the garage's wiring from what it drew: the rotation planner (`charged plan`)."""
