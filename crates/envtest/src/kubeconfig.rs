//! Kubeconfig files: a server, the CA that signed it, and one user authenticating with a client
//! certificate or a token file. Everything by path, so a kubeconfig holds no secret itself and
//! can be written 0644 beside keys and tokens written 0600.

use std::path::{Path, PathBuf};

/// How the kubeconfig's user authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A client certificate and its key.
    ClientCert {
        /// The certificate.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A bearer token read from a file (a ServiceAccount token), re-read by clients that rotate it.
    TokenFile(PathBuf),
}

/// The text of a kubeconfig with one cluster `name` at `server` (trusting `ca`), one user and
/// one context, current.
pub fn render(name: &str, server: &str, ca: &Path, user: &str, auth: &Auth) -> String {
    let credentials = match auth {
        Auth::ClientCert { cert, key } => {
            format!("    client-certificate: {}\n    client-key: {}\n", cert.display(), key.display())
        }
        Auth::TokenFile(path) => format!("    tokenFile: {}\n", path.display()),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n{credentials}contexts:\n- name: {name}\n  \
         context:\n    cluster: {name}\n    user: {user}\ncurrent-context: {name}\n",
        ca = ca.display(),
    )
}

/// The administrator's kubeconfig of a control plane at `server` whose certificates
/// [`crate::pki::make`] made in `pki` with [`crate::leaves`]: client pair `admin`, CA `ca.crt`.
pub fn admin(name: &str, server: &str, pki: &Path) -> String {
    let auth = Auth::ClientCert { cert: pki.join("admin.crt"), key: pki.join("admin.key") };
    render(name, server, &pki.join("ca.crt"), "envtest-admin", &auth)
}

/// A client for the kubeconfig at `path`.
pub async fn client(path: &Path) -> Result<kube::Client, crate::Error> {
    let bad = |e: &dyn std::fmt::Display| crate::Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &Default::default()).await.map_err(|e| bad(&e))?;
    kube::Client::try_from(config).map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_kubeconfig_names_the_file_and_holds_no_token() {
        let text = render(
            "envtest",
            "https://127.0.0.1:6443",
            Path::new("/d/ca.crt"),
            "data-storage-sa",
            &Auth::TokenFile("/d/token".into()),
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token_file.as_deref(), Some("/d/token"));
        assert!(user.token.is_none());
        assert_eq!(parsed.current_context.as_deref(), Some("envtest"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority.as_deref(), Some("/d/ca.crt"));
    }
}
