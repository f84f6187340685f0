//! Writes the CRD YAML of eventflow into a directory (default `crds/`).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "crds".to_owned()));
    std::fs::create_dir_all(&dir)?;
    for (name, yaml) in eventflow_operator::crd::crd_files()? {
        std::fs::write(dir.join(name), yaml)?;
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}
