package pgembed

import "errors"

// TLSFiles holds the absolute paths of the PEM files generated for a cluster
// with TLS. ClientCert and ClientKey are empty unless
// TLSConfig.ClientCertAuth was set.
type TLSFiles struct {
	CACert, CAKey, ServerCert, ServerKey, ClientCert, ClientKey string
}

func (c *Cluster) generateTLS() (*TLSFiles, error) {
	return nil, errors.New("pgembed: TLS is not available in this build yet")
}
