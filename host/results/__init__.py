"""Result records, the results document (schema) and the store."""
