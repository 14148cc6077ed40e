"""GitLab CI templates and component: schema, generation, docs, and real runs."""
