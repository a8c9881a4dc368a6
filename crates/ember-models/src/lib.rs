//! Model families with official state_dict names, and a registry that builds them from (arch, JSON config)
